# jobqueue in a container: the service only (tests run with `python3 dev.py test`).
FROM python:3.11-slim
WORKDIR /app
COPY setup.cfg dev.py ./
RUN pip install --no-cache-dir $(python dev.py requirements)
COPY server.py ./
COPY jobqueue ./jobqueue
COPY handlers ./handlers
COPY templates ./templates
COPY static ./static
EXPOSE 5000
ENTRYPOINT ["python", "server.py"]
CMD ["--host=0.0.0.0"]
