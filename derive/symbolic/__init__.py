"""derive.symbolic"""
