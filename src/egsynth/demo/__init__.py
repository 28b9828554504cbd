"""`egsynth demo`: a web page that paints a label map in an exemplar's style and shows, for any output pixel,
the exemplar region its style came from. `core` holds the work (no web framework) and `pixel_attention` that
region (Eq. 4-8), `server` the thin FastAPI app and `static/` the page."""
