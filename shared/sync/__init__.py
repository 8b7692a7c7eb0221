"""One sync run and what surrounds it: read, judge, write, swap, lease, stage, retention, ImmyBot
tags, assets.
"""
