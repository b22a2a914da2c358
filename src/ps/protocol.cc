#include "ps/protocol.h"

namespace overcast::ps {

std::string_view MessageName(uint8_t type) {
  switch (type) {
    case kCreateTable: return "create_table";
    case kDropTable: return "drop_table";
    case kDescribe: return "describe";
    case kPull: return "pull";
    case kPush: return "push";
    case kPullDense: return "pull_dense";
    case kPushDense: return "push_dense";
    case kBlobGet: return "blob_get";
    case kBlobSet: return "blob_set";
    case kBlobDelete: return "blob_delete";
    case kBlobCreate: return "blob_create";
    case kBarrier: return "barrier";
    case kCheckpoint: return "checkpoint";
    case kStats: return "stats";
  }
  return "unknown";
}

void PutName(ByteWriter* w, std::string_view name) {
  w->Put<uint32_t>(static_cast<uint32_t>(name.size()));
  w->PutBytes(name.data(), name.size());
  size_t used = 4 + name.size();
  static const char kZeros[8] = {};
  w->PutBytes(kZeros, (8 - used % 8) % 8);
}

Status GetName(ByteReader* r, std::string* name) {
  OC_RETURN_IF_ERROR(r->GetString(name, 256));
  size_t used = 4 + name->size();
  return r->Skip((8 - used % 8) % 8);
}

Status PeekTable(std::string_view payload, std::string* table) {
  ByteReader r(payload);
  return GetName(&r, table);
}

Status DecodeSparse(std::string_view payload, bool with_grads, uint32_t dim,
                    SparseRequest* req) {
  ByteReader r(payload);
  OC_RETURN_IF_ERROR(GetName(&r, &req->table));
  OC_RETURN_IF_ERROR(r.Get(&req->n));
  OC_RETURN_IF_ERROR(r.GetView(req->n, 8, &req->keys));
  if (with_grads) {
    if (dim == 0) return InvalidArgument("push needs the table dim");
    if (req->n > (uint64_t{1} << 40) / dim) return Corruption("push too large");
    OC_RETURN_IF_ERROR(r.GetView(req->n * dim, 4, &req->grads));
  }
  if (r.remaining() != 0) return Corruption("trailing bytes in sparse request");
  return Status::Ok();
}

Status DecodeDense(std::string_view payload, bool with_grads, DenseRequest* req) {
  ByteReader r(payload);
  OC_RETURN_IF_ERROR(GetName(&r, &req->table));
  OC_RETURN_IF_ERROR(r.Get(&req->offset));
  OC_RETURN_IF_ERROR(r.Get(&req->count));
  if (with_grads) OC_RETURN_IF_ERROR(r.GetView(req->count, 4, &req->grads));
  if (r.remaining() != 0) return Corruption("trailing bytes in dense request");
  return Status::Ok();
}

}  // namespace overcast::ps
