"""torchslim.debian"""
