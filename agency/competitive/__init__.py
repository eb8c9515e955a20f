"""Competitive watch: competitors' public feeds -> items -> topics with momentum -> proposals.

Pure logic (parsing, robots rules, clustering); the I/O lives in activities/competitive.py.
"""
