"""Browser calls over WebRTC: the call page's transport (aiortc) and its signalling.

Modules are imported directly (``from voice_ai.webrtc.transport import WebRtcTransport``); this
package imports nothing itself, so the signalling checks do not pull in the media stack.
"""
