"""torchslim.oci"""
