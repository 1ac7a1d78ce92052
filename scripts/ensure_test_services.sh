#!/usr/bin/env bash
# Placeholder until the PostgreSQL store lands: nothing to install yet.
exit 0
