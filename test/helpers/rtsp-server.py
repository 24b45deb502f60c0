#!/usr/bin/env python3
"""A real RTSP server for tests (GStreamer's gst-rtsp-server): a moving test pattern as
RTP/JPEG at /cam, on 127.0.0.1. Prints `PORT <n>` once it listens. Optional basic auth:
--user U --password P. --image PNG: that picture, live at --fps, instead of the test pattern
(a scene a test detector finds something in). Usage: rtsp-server.py [--port 0] [--width 320]
[--height 240] [--fps 10] [--image PNG]
"""
import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, default=0)
p.add_argument("--width", type=int, default=320)
p.add_argument("--height", type=int, default=240)
p.add_argument("--fps", type=int, default=10)
p.add_argument("--pattern", default="ball")
p.add_argument("--user")
p.add_argument("--password")
p.add_argument("--image")
a = p.parse_args()

Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(str(a.port))
factory = GstRtspServer.RTSPMediaFactory()
if a.image:
    source = f"filesrc location={a.image} ! pngdec ! videoconvert ! imagefreeze is-live=true ! videoscale ! videoconvert"
else:
    source = f"videotestsrc is-live=true pattern={a.pattern}"
factory.set_launch(
    f"( {source} ! video/x-raw,format=I420,width={a.width},height={a.height},framerate={a.fps}/1 "
    f"! jpegenc quality=85 ! rtpjpegpay name=pay0 pt=26 )"
)
factory.set_shared(True)
if a.user:
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(a.user, a.password or ""), token)
    server.set_auth(auth)
    perms = GstRtspServer.RTSPPermissions()
    perms.add_permission_for_role("user", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, True)
    perms.add_permission_for_role("user", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, True)
    factory.set_permissions(perms)
server.get_mount_points().add_factory("/cam", factory)
if server.attach(None) == 0:
    print("ERROR cannot listen", flush=True)
    sys.exit(1)
print(f"PORT {server.get_bound_port()}", flush=True)
GLib.MainLoop().run()
