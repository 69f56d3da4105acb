"""torchslim.deps"""
