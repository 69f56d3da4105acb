"""torchslim.oci: container images without a daemon, after go-containerregistry.

``layer`` (descriptors, deterministic tar writer), ``image`` (the Image protocol),
``empty`` (FROM scratch), ``mutate`` (append layers, edit config),
``layout`` (OCI layout dir) and ``archive`` (docker-archive tarball), each a
source and a sink. Nothing here knows about torch.
"""
