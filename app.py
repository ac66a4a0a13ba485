"""Latent Lab: streamlit run app.py"""
import streamlit as st

st.set_page_config(page_title="Latent Lab", page_icon="🧭", layout="wide")
st.title("Latent Lab")
st.write("An interactive latent-space explorer for variational autoencoders.")
