# Pattern: Jupyter on a pytorch base with an empty token and --allow-root,
# port 8888 exposed.
# How common: very common for "notebook in a container" repos; the empty-token
# plus --allow-root CMD line is one of the most copied lines in ML Dockerfiles.
FROM pytorch/pytorch:latest
RUN pip install jupyterlab ipywidgets matplotlib
WORKDIR /workspace
EXPOSE 8888
CMD ["jupyter", "lab", "--ip=0.0.0.0", "--no-browser", "--allow-root", "--ServerApp.token=''", "--ServerApp.password=''"]
