"""(commands registered on edge_ser.cli.app)"""
