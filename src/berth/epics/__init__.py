"""berth.epics"""
