# Pattern: untagged pytorch/pytorch base (implicitly :latest), ADD of the
# requirements file, pip with --no-cache-dir.
# How common: common in small projects and tutorials; the untagged or :latest
# pytorch/pytorch FROM is the single most frequent form in code search.
FROM pytorch/pytorch
ADD requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt
WORKDIR /app
COPY . /app
ENTRYPOINT ["python", "serve.py"]
