"""A simulated MFP: the device-side programs a real printer would have.

For now its panel: a web page on 127.0.0.1 where a local operator logs in
and answers approval requests (YES / NO), reporting answers to the device
agent over the agent's local channel.  Run it as ``twistd mfp-simulator``.
"""
