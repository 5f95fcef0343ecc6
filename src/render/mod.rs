//! Renders a plan document as text (terminal) or markdown (PR comments).
