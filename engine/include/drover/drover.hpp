#pragma once
// Everything a program embedding drover's engine needs.

#include <drover/attempt.hpp>
#include <drover/boxed.hpp>
#include <drover/cache.hpp>
#include <drover/constraints.hpp>
#include <drover/context.hpp>
#include <drover/engine.hpp>
#include <drover/event.hpp>
#include <drover/graph.hpp>
#include <drover/journal.hpp>
#include <drover/module.hpp>
#include <drover/pipeline.hpp>
#include <drover/result.hpp>
#include <drover/secrets.hpp>
#include <drover/status.hpp>
#include <drover/version.hpp>
