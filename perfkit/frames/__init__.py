"""Frames: pandas DataFrames with declared schemas (see :mod:`perfkit.frames.schemas`)."""
from .schemas import (BUILD_LOG, DIAGNOSES, ENGINE_DISPATCH, ENGINE_LAYERS, FUSION_BENEFIT, GPU_SAMPLES, KERNELS,
                      LAYER_SUMMARY, LAYER_TIMES, MEMORY_EVENTS, QUERIES, SCHEMAS, SWEEP, SWEEP_LAYERS, Column, Schema,
                      SchemaError, get_schema)

__all__ = ["Column", "Schema", "SchemaError", "SCHEMAS", "get_schema", "BUILD_LOG", "ENGINE_LAYERS", "SWEEP",
           "SWEEP_LAYERS", "ENGINE_DISPATCH", "FUSION_BENEFIT", "LAYER_TIMES", "MEMORY_EVENTS", "QUERIES",
           "GPU_SAMPLES", "KERNELS", "LAYER_SUMMARY", "DIAGNOSES"]
