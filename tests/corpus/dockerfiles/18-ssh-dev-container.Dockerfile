# Pattern: "remote dev box" image: openssh-server, root password, port 22,
# compilers and dev tools on a CUDA devel base.
# How common: occasional in university/cluster setups, copied from sshd
# tutorials; a well-known anti-pattern.
FROM nvidia/cuda:11.8.0-cudnn8-devel-ubuntu22.04
ENV ROOT_PASSWORD=changeme
RUN apt-get update && apt-get install -y openssh-server build-essential git vim python3-pip
RUN mkdir /var/run/sshd && echo "root:${ROOT_PASSWORD}" | chpasswd
RUN pip3 install torch pytest ipython
EXPOSE 22
CMD ["/usr/sbin/sshd", "-D"]
