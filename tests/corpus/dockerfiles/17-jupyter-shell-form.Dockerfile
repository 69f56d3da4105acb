# Pattern: python:3 base with jupyter from requirements, shell-form CMD with
# an empty NotebookApp token, dev requirements installed.
# How common: common in course material and Kaggle-style repos.
FROM python:3.10
WORKDIR /home/notebooks
COPY requirements.txt requirements-dev.txt ./
RUN pip install --no-cache-dir -r requirements.txt -r requirements-dev.txt
EXPOSE 8888
CMD jupyter notebook --ip 0.0.0.0 --no-browser --NotebookApp.token= --allow-root
