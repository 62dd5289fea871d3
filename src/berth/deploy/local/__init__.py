"""berth.deploy.local"""
