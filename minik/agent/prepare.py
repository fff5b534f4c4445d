"""The node's container runtime, made ready before the node exists: host checks → containerd
(started, adopted, or the existing --container-runtime-endpoint) → CRI client → the pause image
(built and imported when missing) and the airgap images from <agent_dir>/images/ → registries.yaml
rendered to certs.d.

Nothing here needs the server, which is why it is its own module with light imports: `minik
agent` starts it first thing, while it still bootstraps its credentials and link, and imports the
rest of the node (pod workers, network, DNS) meanwhile.
Neighbours: `minik.agent.runtime.NodeRuntime` takes the result (or runs it itself, on the server);
`containerd`, `images`, `registries`, `hostcheck` do the work.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass

from minik.agent.containerd import Containerd, ContainerdPaths
from minik.agent.cri import CriClient
from minik.agent.hostcheck import check_host, require_usable
from minik.agent.images import Images, find_pause_source
from minik.agent.registries import Registries, load_registries, write_certs_d
from minik.config import AgentConfig

__all__ = ["PreparedRuntime", "prepare_runtime"]

log = logging.getLogger("minik.agent.runtime")


@dataclass(frozen=True, slots=True)
class PreparedRuntime:
    """The node's container runtime, up and holding the pause and airgap images."""

    containerd: Containerd
    cri: CriClient
    registries: Registries


async def prepare_runtime(cfg: AgentConfig, containerd_backoff: tuple[float, float] = (1.0, 30.0)) -> PreparedRuntime:
    """Host checks → containerd → CRI client → pause image → airgap images → registries.yaml.

    Uses only this machine's settings (data/run/config dirs, runtime endpoint), none of the
    cluster's, so it can run before the node has met its server."""
    agent_dir = cfg.agent_dir
    facts = await asyncio.to_thread(check_host, agent_dir)
    require_usable(facts)
    source = await asyncio.to_thread(find_pause_source)
    pause_ref = await asyncio.to_thread(source.image_ref)
    paths = ContainerdPaths.from_dirs(cfg.data_dir, cfg.run_dir)
    containerd = Containerd(paths, facts, pause_ref,
                            external_endpoint=cfg.container_runtime_endpoint,
                            backoff_initial=containerd_backoff[0],
                            backoff_max=containerd_backoff[1])
    await containerd.start()
    cri = CriClient(containerd.endpoint)
    images = Images(cri, containerd.endpoint, os.path.join(agent_dir, "images-work"),
                    snapshotter=facts.snapshotter)
    # Two `ctr import`s side by side: containerd takes both at once, and both precede Ready.
    _, imported = await asyncio.gather(images.ensure_pause_image(source),
                                       images.import_dir(os.path.join(agent_dir, "images")))
    if imported:
        log.info("airgap images imported: %s", ", ".join(imported))
    registries: Registries = await asyncio.to_thread(load_registries, cfg.registries_file)
    await asyncio.to_thread(write_certs_d, registries, paths.registry_config_path)
    return PreparedRuntime(containerd, cri, registries)
