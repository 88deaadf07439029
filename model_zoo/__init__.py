"""Small demonstration models trained by rep4d's own pipelines on synthetic clips (Hub-format folders)."""
