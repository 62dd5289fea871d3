"""berth.backends"""
