"""Helpers for `provision host`: collections, runner event rendering."""
