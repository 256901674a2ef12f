"""derive.experiments"""
