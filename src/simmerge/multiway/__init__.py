"""Multi-way merges: pure planning of merge trees and baselines, apart from their execution."""
