"""Placeholder: the app-explore helper writes this page."""
import streamlit as st

st.title("decoder")
st.caption("This page is being built.")
