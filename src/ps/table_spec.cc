#include "ps/table_spec.h"

#include <cmath>

#include "common/hash.h"

namespace overcast::ps {

Status ValidateSpec(const TableSpec& s) {
  if (s.name.empty() || s.name.size() > 256) return InvalidArgument("table name must be 1..256 bytes");
  if (s.kind != TableKind::kSparse && s.kind != TableKind::kDense) {
    return InvalidArgument("unknown table kind");
  }
  if (s.kind == TableKind::kSparse && (s.dim == 0 || s.dim > 1 << 16)) {
    return InvalidArgument("sparse table dim must be 1..65536");
  }
  if (s.kind == TableKind::kDense && (s.length == 0 || s.begin > s.end || s.end > s.length)) {
    return InvalidArgument("dense table needs length > 0 and a range inside it");
  }
  if (static_cast<uint8_t>(s.optimizer.kind) > static_cast<uint8_t>(OptimizerKind::kAdam)) {
    return InvalidArgument("unknown optimizer");
  }
  if (static_cast<uint8_t>(s.init.kind) > static_cast<uint8_t>(InitKind::kNormal)) {
    return InvalidArgument("unknown initializer");
  }
  if (!std::isfinite(s.optimizer.lr) || s.optimizer.lr < 0) return InvalidArgument("bad lr");
  return Status::Ok();
}

void EncodeSpec(const TableSpec& s, ByteWriter* w) {
  w->PutString(s.name);
  w->Put<uint8_t>(static_cast<uint8_t>(s.kind));
  w->Put<uint32_t>(s.dim);
  w->Put<uint64_t>(s.length);
  w->Put<uint64_t>(s.begin);
  w->Put<uint64_t>(s.end);
  const auto& o = s.optimizer;
  w->Put<uint8_t>(static_cast<uint8_t>(o.kind));
  for (float f : {o.lr, o.l1, o.l2, o.beta1, o.beta2, o.eps, o.ftrl_beta}) w->Put<float>(f);
  w->Put<uint8_t>(static_cast<uint8_t>(s.init.kind));
  w->Put<float>(s.init.a);
  w->Put<float>(s.init.b);
  w->Put<uint64_t>(s.init.seed);
}

Status DecodeSpec(ByteReader* r, TableSpec* s) {
  uint8_t kind = 0, opt = 0, init = 0;
  OC_RETURN_IF_ERROR(r->GetString(&s->name, 256));
  OC_RETURN_IF_ERROR(r->Get(&kind));
  OC_RETURN_IF_ERROR(r->Get(&s->dim));
  OC_RETURN_IF_ERROR(r->Get(&s->length));
  OC_RETURN_IF_ERROR(r->Get(&s->begin));
  OC_RETURN_IF_ERROR(r->Get(&s->end));
  OC_RETURN_IF_ERROR(r->Get(&opt));
  auto& o = s->optimizer;
  for (float* f : {&o.lr, &o.l1, &o.l2, &o.beta1, &o.beta2, &o.eps, &o.ftrl_beta}) {
    OC_RETURN_IF_ERROR(r->Get(f));
  }
  OC_RETURN_IF_ERROR(r->Get(&init));
  OC_RETURN_IF_ERROR(r->Get(&s->init.a));
  OC_RETURN_IF_ERROR(r->Get(&s->init.b));
  OC_RETURN_IF_ERROR(r->Get(&s->init.seed));
  s->kind = static_cast<TableKind>(kind);
  o.kind = static_cast<OptimizerKind>(opt);
  s->init.kind = static_cast<InitKind>(init);
  return ValidateSpec(*s);
}

Result<OptimizerKind> ParseOptimizer(const std::string& name) {
  if (name == "add") return OptimizerKind::kAdd;
  if (name == "sgd") return OptimizerKind::kSgd;
  if (name == "adagrad") return OptimizerKind::kAdagrad;
  if (name == "ftrl") return OptimizerKind::kFtrl;
  if (name == "adam") return OptimizerKind::kAdam;
  return InvalidArgument("unknown optimizer '" + name + "' (expected add, sgd, adagrad, ftrl, adam)");
}

std::string OptimizerName(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::kAdd: return "add";
    case OptimizerKind::kSgd: return "sgd";
    case OptimizerKind::kAdagrad: return "adagrad";
    case OptimizerKind::kFtrl: return "ftrl";
    case OptimizerKind::kAdam: return "adam";
  }
  return "?";
}

size_t StateFloats(OptimizerKind kind, size_t n) {
  switch (kind) {
    case OptimizerKind::kAdd:
    case OptimizerKind::kSgd: return 0;
    case OptimizerKind::kAdagrad: return n;
    case OptimizerKind::kFtrl:
    case OptimizerKind::kAdam: return 2 * n;
  }
  return 0;
}

namespace {
// Uniform in [0, 1) from 53 bits of a mixed hash.
double Unit(uint64_t h) { return static_cast<double>(h >> 11) * 0x1.0p-53; }
}  // namespace

float InitialValue(const Initializer& init, uint64_t key, uint32_t j) {
  switch (init.kind) {
    case InitKind::kZeros: return 0.0f;
    case InitKind::kConstant: return init.a;
    case InitKind::kUniform: {
      uint64_t h = MixKey(init.seed ^ MixKey(key) ^ (uint64_t{j} << 32 | j));
      return static_cast<float>(init.a + (init.b - init.a) * Unit(h));
    }
    case InitKind::kNormal: {
      uint64_t h1 = MixKey(init.seed ^ MixKey(key) ^ (uint64_t{j} << 32 | j));
      uint64_t h2 = MixKey(h1 + 0x9E3779B97F4A7C15ULL);
      double u1 = 1.0 - Unit(h1), u2 = Unit(h2);  // u1 in (0, 1]
      double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
      return static_cast<float>(init.a + init.b * z);
    }
  }
  return 0.0f;
}

}  // namespace overcast::ps
