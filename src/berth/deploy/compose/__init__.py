"""berth.deploy.compose"""
