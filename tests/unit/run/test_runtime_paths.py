"""Container paths in hand-written st.cmd files are mapped onto the host consistently."""

from berth.run.launch import _map_paths


def test_config_path_that_maps_to_itself_is_not_rewritten_by_a_shorter_prefix():
    # Inside the soft-IOC container the config folder really is /epics/ioc/config, while
    # /epics/ioc (the Generic IOC folder) maps to the embedded IOC's folder.
    mapping = {"/epics/ioc/config": "/epics/ioc/config", "/epics/ioc": "/opt/soft"}
    text = 'dbLoadRecords /epics/ioc/config/records.db\ncd "/epics/ioc"\n'
    expected = 'dbLoadRecords /epics/ioc/config/records.db\ncd "/opt/soft"\n'
    assert _map_paths(text, mapping) == expected


def test_paths_are_mapped_on_word_boundaries_only():
    mapping = {"/epics/ioc/config": "/tmp/cfg", "/epics/ioc": "/opt/soft"}
    text = "dbLoadRecords /epics/ioc/config/a.db\n/epics/iocx/b\ncd /epics/ioc\n"
    assert _map_paths(text, mapping) == "dbLoadRecords /tmp/cfg/a.db\n/epics/iocx/b\ncd /opt/soft\n"
