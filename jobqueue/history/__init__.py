"""History of URLs and the space their bodies take: body codec, diffs, storage figures, retention policy.

Backend-neutral: the stores (jobqueue/store/) use the codec and the retention policy; the web layer uses
the diff. No web code here.
"""
