"""berth.run"""
