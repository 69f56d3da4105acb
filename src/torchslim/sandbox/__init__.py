"""The sandbox: run a command in an image's root filesystem, holding nothing of the host.

``run`` starts it (user, mount, pid, network, IPC and UTS namespaces; no daemon) and
``inner`` is its init inside those namespaces (mounts, limits, dropping privileges,
reaping every process).
"""
