"""Explanations of trained Keras models: Grad-CAM, feature maps, LIME, and the errors worth a look.

Everything here computes and returns arrays or tables; drawing is in :mod:`medclf.plots.explain_plots`.
By concern:

* :mod:`~medclf.analysis.explain.gradcam` — where the evidence for the positive (disease) class sits;
* :mod:`~medclf.analysis.explain.feature_maps` — what the convolution layers respond to;
* :mod:`~medclf.analysis.explain.lime` — seeded LIME on superpixels (also for dense networks);
* :mod:`~medclf.analysis.explain.errors` — false negatives and false positives at a record's stored
  threshold, most confident first, and the galleries of them;
* :mod:`~medclf.analysis.explain.subjects` — which records can be explained, the selection rule's
  choice (:mod:`medclf.evaluation.selection`, on validation only), each model loaded with its test
  predictions and input images;
* :mod:`~medclf.analysis.explain.layers` — finding layers, also inside nested sub-models.

The names below are the package's public interface, re-exported from those modules.

Example::

    cam = gradcam(model, image)                       # (H, W) in 0..1
    maps = feature_maps(model, image)                 # {"conv1": (H, W, 32), ...}
    lime = lime_explanation(model, image, num_samples=1000, seed=42)
    lime.weights                                      # (H, W) superpixel weights, + for disease
"""

from medclf.analysis.explain.errors import (ERROR_KINDS, ErrorGallery, error_cases, error_counts, error_galleries,
                                            gallery_log, most_confident)
from medclf.analysis.explain.feature_maps import active_channel, conv_layer_names, feature_maps
from medclf.analysis.explain.gradcam import (gradcam, gradcam_grid, gradcam_layer, gradcam_table, gradcams,
                                             supports_gradcam)
from medclf.analysis.explain.layers import MEMBER_NAME, ensemble_members
from medclf.analysis.explain.lime import (LimeResult, lime_classifier, lime_comparison, lime_explanation, segment,
                                          superpixel_weights, top_superpixels)
from medclf.analysis.explain.subjects import (EXPLAINED_COLUMNS, LoadedModel, comparison_pair, explainable,
                                              explained_table, feature_map_subject, images_for, input_spec,
                                              is_explainable, load_for_explanation, load_model, pick_examples,
                                              selection_table, validation_auc)

__all__ = [
    "ERROR_KINDS", "EXPLAINED_COLUMNS", "MEMBER_NAME", "ErrorGallery", "LimeResult", "LoadedModel", "active_channel",
    "comparison_pair", "conv_layer_names", "ensemble_members", "error_cases", "error_counts", "error_galleries",
    "explainable", "explained_table", "feature_map_subject", "feature_maps", "gallery_log", "gradcam",
    "gradcam_grid", "gradcam_layer", "gradcam_table", "gradcams", "images_for", "input_spec", "is_explainable", "lime_classifier",
    "lime_comparison", "lime_explanation", "load_for_explanation", "load_model", "most_confident", "pick_examples",
    "segment", "selection_table", "superpixel_weights", "supports_gradcam", "top_superpixels", "validation_auc",
]
