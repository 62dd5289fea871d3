"""berth.ioc"""
