"""torchslim.slim"""
