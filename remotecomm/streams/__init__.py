"""What both ends of a session's streams share: the inner HTTP heads and the credit windows.

The terminal (:mod:`remotecomm.terminal.tunnel`, :mod:`remotecomm.terminal.local_port`)
and the device agent (:mod:`remotecomm.device.http_streams`) write and read
the HTTP heads that travel in a stream with :mod:`remotecomm.streams.heads`
(h11 on both sides, one hop-by-hop list) and keep each direction's flow
control with :mod:`remotecomm.streams.credit`.  The relay never imports this
package: it forwards frames without reading them.
"""
