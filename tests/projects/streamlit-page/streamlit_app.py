"""A Streamlit page: a slider's value through a small torch computation."""

import streamlit as st
import torch

st.title("Squares")
n = st.slider("n", 1, 10, 4)
squares = torch.arange(1, n + 1) ** 2
st.write(f"sum of the first {n} squares: {int(squares.sum())}")
