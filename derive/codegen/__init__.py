"""derive.codegen"""
