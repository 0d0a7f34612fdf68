# modelkit as a container, in the shape a Hugging Face Docker Space expects (uid 1000, port 7860).
#
#   docker build -t modelkit .
#   docker run -p 7860:7860 modelkit                  # runs on the CPU
#   docker run --gpus all -p 7860:7860 modelkit       # same image on a GPU (NVIDIA Container Toolkit)
#
# torch from PyPI is a CUDA build: it runs on the CPU when no GPU is passed in, and on the GPU with
# `--gpus all` (the CUDA libraries come with the wheels; the host needs only the NVIDIA driver).
# A smaller CPU-only image takes torch and torchvision from PyTorch's CPU wheel index instead:
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu -t modelkit:cpu .
# Settings (docker run -e NAME=value): MODELKIT_MODEL_CACHE_MB (models kept in memory),
# MODELKIT_CACHE_DIR and MODELKIT_RESULT_CACHE_MB (results on disk), TORCH_HOME (downloaded weights),
# MODELKIT_OFFLINE=1 (never download). Mount a volume on /home/user/.cache to keep caches.
FROM python:3.11-slim

ARG TORCH_INDEX_URL=""

RUN useradd --create-home --uid 1000 user
USER 1000
ENV HOME=/home/user \
    PATH=/home/user/.local/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    GRADIO_ANALYTICS_ENABLED=False \
    GRADIO_TEMP_DIR=/home/user/.cache/gradio \
    TORCH_HOME=/home/user/.cache/torch \
    TORCHINDUCTOR_CACHE_DIR=/home/user/.cache/torchinductor \
    MPLCONFIGDIR=/home/user/.cache/matplotlib \
    HF_HOME=/home/user/.cache/huggingface \
    MODELKIT_CACHE_DIR=/home/user/.cache/modelkit \
    MODELKIT_RESULT_CACHE_MB=1024 \
    MODELKIT_MODEL_CACHE_MB=2048
WORKDIR /home/user/app

# Requirements first, so that a change to the code does not reinstall torch.
COPY --chown=1000:1000 requirements.txt .
RUN pip install --no-cache-dir --user ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} \
      -r requirements.txt
COPY --chown=1000:1000 . .

EXPOSE 7860
# Start-up (imports, and the model table filled before serving) takes about a minute on 2 cores.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/' % os.environ.get('GRADIO_SERVER_PORT', '7860'), timeout=4)"]
CMD ["python", "app.py"]
