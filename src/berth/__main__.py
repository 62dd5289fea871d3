import sys

if sys.argv[1:2] == ["run"] and not {"--help", "-h"} & set(sys.argv[2:]):
    # Fast path for IOC start-up (no Typer import); see berth.cli.run.
    from berth.cli.run import run_without_typer

    sys.exit(run_without_typer(sys.argv[2:]))

from berth.cli.main import main

main()
