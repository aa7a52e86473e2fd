//! Dropping the duplicate "twin" events Salt fires for one fact (being written).
