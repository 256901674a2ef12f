"""derive.train"""
