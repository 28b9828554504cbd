"""The demo's web app: FastAPI routes over `egsynth.demo.core`, and the page in `static/`.

The page sends uploads as base64 in JSON and gets images back as PNG data URLs, so the app needs no form
parsing and keeps no file. A bad input answers 400 with the CLI's one line (`error: NAME: problem`) and the app
goes on serving.
"""

from __future__ import annotations

import base64
import binascii
import io
from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image
from pydantic import BaseModel, Field

from egsynth.demo.core import ClassInfo, Demo, Synthesis, Upload, class_info, legend
from egsynth.demo.pixel_attention import PixelAttention
from egsynth.evaluation.figures import colorize_labels
from egsynth.io import BadInput
from egsynth.models.variants import VARIANTS
from egsynth.synthesis import InputError

STATIC = Path(__file__).parent / "static"

MAX_REQUEST_BYTES = 64 * 2**20
"""Largest request body: a few uploads at the largest side the CLI reads by default, in base64."""

SHOWN_CLASSES = 5
"""Exemplar classes named per scale, the largest shares first..."""

SHOWN_SHARE = 0.005
"""...down to half a percent."""


# ---------------------------------------------------------------------------------------------
# requests


class FileIn(BaseModel):
    name: Annotated[str, Field(max_length=255)]  # the file's name on the user's machine
    data: str  # its bytes, base64


class SynthesizeIn(BaseModel):
    model: str
    target: str | FileIn  # a scene's name, or an uploaded label map
    exemplar: str | FileIn  # a scene's name, or an uploaded photo
    exemplar_labels: FileIn | None = None  # the uploaded photo's label map (default: parsed)


class ExplainIn(BaseModel):
    synthesis: str
    x: int
    y: int


class MixIn(BaseModel):
    synthesis: str
    exemplar_b: str | FileIn
    exemplar_b_labels: FileIn | None = None
    t: float


def _upload(file: str | FileIn | None) -> str | Upload | None:
    if not isinstance(file, FileIn):
        return file
    try:
        return Upload(name=file.name, data=base64.b64decode(file.data, validate=True))
    except binascii.Error:
        raise InputError(f"{file.name}: the upload is not base64 data") from None


# ---------------------------------------------------------------------------------------------
# responses


def png_data_url(image: np.ndarray) -> str:
    """A uint8 image [H, W, 3] as a data URL the page can show."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _class(info: ClassInfo, share: float | None = None) -> dict:
    return {"name": info.name, "color": info.color} | ({} if share is None else {"share": share})


def synthesis_json(result: Synthesis) -> dict:
    target, exemplar = result.target, result.exemplar
    return {
        "synthesis": result.id,
        "model": result.model,
        "variant": result.variant,
        "has_attention": result.has_attention,
        "can_mix": VARIANTS[result.variant].msca,
        "seconds": result.seconds,
        "width": int(target.labels.shape[1]),
        "height": int(target.labels.shape[0]),
        "target_name": result.target_name,
        "exemplar_name": result.exemplar_name,
        "image": png_data_url(result.image),
        "target": png_data_url(colorize_labels(target.labels)),
        "exemplar": png_data_url(exemplar.image),
        "exemplar_labels": png_data_url(colorize_labels(exemplar.labels)),
        "legend": [_class(info) for info in legend(target.labels, exemplar.labels)],
    }


def attention_json(attention: PixelAttention) -> dict:
    return {
        "x": attention.x,
        "y": attention.y,
        "target_class": _class(class_info(attention.target_class)),
        "scales": [
            {
                "scale": scale.scale,
                "width": int(scale.weights.shape[1]),
                "height": int(scale.weights.shape[0]),
                "carried": scale.carried,
                "overlay": png_data_url(scale.overlay),
                "classes": [
                    _class(class_info(index), share)
                    for index, share in list(scale.classes.items())[:SHOWN_CLASSES]
                    if share >= SHOWN_SHARE
                ],
            }
            for scale in attention.scales
        ],
    }


# ---------------------------------------------------------------------------------------------
# the app


def create_app(demo: Demo) -> FastAPI:
    app = FastAPI(title="egsynth demo", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.middleware("http")
    async def refuse_large_bodies(request: Request, call_next):
        if int(request.headers.get("content-length") or 0) > MAX_REQUEST_BYTES:
            message = f"error: the request is larger than {MAX_REQUEST_BYTES // 2**20} MiB; upload smaller files"
            return JSONResponse({"error": message}, status_code=413)
        return await call_next(request)

    @app.exception_handler(BadInput)
    async def one_line(request: Request, error: BadInput) -> JSONResponse:
        return JSONResponse({"error": f"error: {error}"}, status_code=400)

    @app.get("/")
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/api/choices")
    def choices() -> dict:
        return {"models": list(demo.models), "default_model": demo.default_model, "scenes": list(demo.scenes)}

    @app.post("/api/synthesize")
    def synthesize(request: SynthesizeIn) -> dict:
        files = (_upload(request.target), _upload(request.exemplar), _upload(request.exemplar_labels))
        return synthesis_json(demo.synthesize(request.model, *files))

    @app.post("/api/explain")
    def explain(request: ExplainIn) -> dict:
        return attention_json(demo.explain(request.synthesis, x=request.x, y=request.y))

    @app.post("/api/mix")
    def mix(request: MixIn) -> dict:
        files = (_upload(request.exemplar_b), _upload(request.exemplar_b_labels))
        image, exemplar_b = demo.mix(request.synthesis, *files, request.t)
        return {"t": request.t, "image": png_data_url(image), "exemplar_b": png_data_url(exemplar_b.image)}

    return app


def serve(demo: Demo, *, host: str, port: int) -> None:
    """Serve the page until interrupted."""
    import uvicorn

    uvicorn.run(create_app(demo), host=host, port=port, log_level="warning")
