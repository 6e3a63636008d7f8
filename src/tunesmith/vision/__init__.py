"""Vision pieces below the families: the EfficientNet-Lite architecture (a transformers model of tunesmith's own, so
the Trainer, peft and safetensors save/load work) and the offline built-in backbone converted from its wheel.

    from tunesmith.vision.efficientnet import EfficientNetLiteConfig, EfficientNetLiteForImageClassification
"""
