# modelkit as a container (and the shape a Hugging Face Docker Space expects: uid 1000, port 7860).
#   docker build -t modelkit .
#   docker run -p 7860:7860 modelkit                  # CPU
#   docker run --gpus all -p 7860:7860 modelkit       # GPU: the PyPI torch wheel is a CUDA build
FROM python:3.11-slim

RUN useradd --create-home --uid 1000 user
USER user
ENV HOME=/home/user \
    PATH=/home/user/.local/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    GRADIO_ANALYTICS_ENABLED=False \
    GRADIO_TEMP_DIR=/home/user/.cache/gradio \
    TORCH_HOME=/home/user/.cache/torch \
    MODELKIT_CACHE_DIR=/home/user/.cache/modelkit \
    MODELKIT_MODEL_CACHE_MB=2048
WORKDIR /home/user/app

COPY --chown=user requirements.txt .
RUN pip install --no-cache-dir --user -r requirements.txt
COPY --chown=user . .

EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/', timeout=4)"
CMD ["python", "app.py"]
