"""``crossmodal serve``: the HTTP service and search page (see docs/server.md)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError
from .options import model_options, pop_model_options, settings

__all__ = ["LOOPBACK_NAMES", "serve"]


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; anything but loopback puts the service on a network.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--store", default=None, help="Store path or URI [env CROSSMODAL_STORE].")
@model_options
@click.option("--served-model-name", "served_model_names", multiple=True, metavar="NAME",
              help="An id the model answers to in the API (repeatable: the first is the id /v1/models lists and "
                   "responses carry, the others are aliases). Default: the catalog name, or the model "
                   "directory's name.")
@click.option("--root", "roots", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="A folder requests may read images from (repeatable); nothing outside the roots is ever read.")
@click.option("--upload-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where uploaded and fetched images are kept (default: STORE-uploads beside a path store).")
@click.option("--token-file", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Bearer tokens, one per line; every endpoint but /healthz then needs one.")
@click.option("--write-token-file", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Tokens allowed to change collections (add, delete); others may then only read.")
@click.option("--allow-urls", is_flag=True, help="Fetch images given by http(s) URL (off by default).")
@click.option("--allow-private-urls", is_flag=True, help="With --allow-urls, also fetch from loopback and private addresses.")
@click.option("--max-batch", type=click.IntRange(min=1), default=None, help="Items per model call when batching requests [64].")
@click.option("--batch-wait-ms", type=click.FloatRange(min=0), default=None, help="How long a batch waits to fill under load [2].")
@click.option("--max-body-mb", type=click.FloatRange(min=0.001), default=None, help="Request body limit [32].")
@click.option("--max-images", type=click.IntRange(min=1), default=None, help="Images per request [32].")
@click.option("--max-texts", type=click.IntRange(min=1), default=None, help="Texts per request [2048].")
@click.option("--max-chars", type=click.IntRange(min=1), default=None, help="Characters per text [8192].")
@click.option("--max-pixels", type=click.IntRange(min=1), default=None, help="Pixels per image [40,000,000].")
@click.option("--max-request-pixels", type=click.IntRange(min=1), default=None,
              help="Pixels of all the images of one request together [400,000,000].")
@click.option("--cors-origin", "cors_origins", multiple=True, help="Allow browser calls from this origin (repeatable).")
@click.option("--allowed-host", "allowed_hosts", multiple=True,
              help="Host names clients may address (repeatable; default with a loopback bind: the loopback names).")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]), default="info", show_default=True)
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, store: str | None, served_model_names: tuple[str, ...],
          roots: tuple[Path, ...], upload_dir: Path | None,
          token_file: Path | None, write_token_file: Path | None, allow_urls: bool, allow_private_urls: bool,
          max_batch: int | None, batch_wait_ms: float | None, max_body_mb: float | None, max_images: int | None,
          max_texts: int | None, max_chars: int | None, max_pixels: int | None, max_request_pixels: int | None,
          cors_origins: tuple[str, ...],
          allowed_hosts: tuple[str, ...], log_level: str, **kwargs: Any) -> None:
    """Serve embeddings, collection search and the search page over HTTP.

    \b
    Examples:
      crossmodal serve --root ~/Pictures
      crossmodal serve --host 0.0.0.0 --token-file tokens.txt --root /srv/photos
    """
    try:
        import uvicorn

        from ..server import BatchingSettings, FetchSettings, Limits, ServerSettings, create_app, read_tokens
    except ImportError as exc:
        raise ConfigError("the server needs its extra: pip install 'crossmodal[server]'") from exc

    if allow_private_urls and not allow_urls:
        raise ConfigError("--allow-private-urls needs --allow-urls")
    opts = pop_model_options(kwargs)
    limit_values = {
        "max_body_bytes": int(max_body_mb * 1024 * 1024) if max_body_mb else None,
        "max_images": max_images, "max_texts": max_texts, "max_chars": max_chars, "max_pixels": max_pixels,
        "max_request_pixels": max_request_pixels,
    }
    batch_values: dict[str, Any] = {"max_items": max_batch, "max_wait_ms": batch_wait_ms}
    server_settings = ServerSettings.from_settings(
        settings(ctx),
        host=host, port=port, store=store,
        model=opts.get("model"), served_model_names=tuple(served_model_names), runtime=opts.get("runtime"),
        mode=opts.get("mode"),
        device=opts.get("device"), threads=opts.get("threads"), offline=True if opts.get("offline") else None,
        roots=tuple(roots), upload_dir=upload_dir,
        tokens=read_tokens(token_file) if token_file else None,
        write_tokens=read_tokens(write_token_file) if write_token_file else None,
        limits=Limits(**{k: v for k, v in limit_values.items() if v is not None}),
        fetch=FetchSettings(enabled=allow_urls, allow_private=allow_private_urls),
        batching=BatchingSettings(**{k: v for k, v in batch_values.items() if v is not None}),
        cors_origins=tuple(cors_origins),
        allowed_hosts=tuple(allowed_hosts) or (LOOPBACK_NAMES if _is_loopback(host) else ()),
    )
    if not _is_loopback(host) and not server_settings.auth_required:
        click.echo(f"warning: serving on {host} without --token-file: anyone who can reach it can use it", err=True)
    app = create_app(server_settings)
    served = f" as {', '.join(server_settings.served_model_names)}" if server_settings.served_model_names else ""
    click.echo(f"crossmodal serving {server_settings.model}{served} on http://{host}:{port}/ (docs at /docs)", err=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, server_header=False)
