"""derive.algorithms"""
