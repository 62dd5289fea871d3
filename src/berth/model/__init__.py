"""berth.model"""
