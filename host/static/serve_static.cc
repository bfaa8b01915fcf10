// A model server in miniature that links the op library statically, the way
// TensorFlow Serving does: the ops come from libbpr_ops.a, linked
// whole-archive so their registration initialisers run at start-up. It never
// calls TF_LoadLibrary and never dlopens libbpr_ops.so.
//
// usage: serve_static MODEL_DIR INPUT_TENSOR DTYPE DIMS INPUT.bin OUTPUT_TENSOR OUTPUT.bin
//   INPUT_TENSOR / OUTPUT_TENSOR: graph tensor names from the serving signature
//     (e.g. serving_default_features:0, StatefulPartitionedCall:0)
//   DTYPE: TF_DataType number of the input (1 float, 2 double, ...)
//   DIMS:  comma-separated input shape, e.g. 3,4
//   INPUT.bin: the input's raw little-endian bytes, row-major
// Writes the uint8 [1, N] response to OUTPUT.bin. Errors: one line, exit 1.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "tensorflow/c/c_api.h"

namespace {

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "serve_static: error: %s\n", what.c_str());
  std::exit(1);
}

void Check(TF_Status* status, const std::string& what) {
  if (TF_GetCode(status) != TF_OK) {
    std::string msg = TF_Message(status);
    for (char& c : msg) {
      if (c == '\n') c = ' ';
    }
    Fail(what + ": " + msg);
  }
}

TF_Output Tensor(TF_Graph* graph, const std::string& name) {
  const size_t colon = name.rfind(':');
  const std::string op = name.substr(0, colon);
  const int index = colon == std::string::npos ? 0 : std::atoi(name.c_str() + colon + 1);
  TF_Operation* oper = TF_GraphOperationByName(graph, op.c_str());
  if (oper == nullptr) Fail("no operation " + op + " in the graph");
  return TF_Output{oper, index};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 8) {
    Fail("usage: serve_static MODEL_DIR INPUT_TENSOR DTYPE DIMS INPUT.bin OUTPUT_TENSOR OUTPUT.bin");
  }
  const char* model_dir = argv[1];
  const auto dtype = static_cast<TF_DataType>(std::atoi(argv[3]));
  std::vector<int64_t> dims;
  std::stringstream dims_text(argv[4]);
  for (std::string d; std::getline(dims_text, d, ',');) dims.push_back(std::atoll(d.c_str()));
  std::ifstream in(argv[5], std::ios::binary);
  if (!in) Fail(std::string("cannot read ") + argv[5]);
  const std::vector<char> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());

  TF_Status* status = TF_NewStatus();
  TF_Graph* graph = TF_NewGraph();
  TF_SessionOptions* options = TF_NewSessionOptions();
  const char* tags[] = {"serve"};
  TF_Session* session = TF_LoadSessionFromSavedModel(options, nullptr, model_dir, tags, 1, graph,
                                                     nullptr, status);
  Check(status, std::string("loading SavedModel ") + model_dir);

  TF_Tensor* input = TF_AllocateTensor(dtype, dims.data(), static_cast<int>(dims.size()), data.size());
  if (input == nullptr || TF_TensorByteSize(input) != data.size()) {
    Fail("the input bytes do not match DTYPE and DIMS");
  }
  std::memcpy(TF_TensorData(input), data.data(), data.size());

  const TF_Output feed = Tensor(graph, argv[2]);
  const TF_Output fetch = Tensor(graph, argv[6]);
  TF_Tensor* output = nullptr;
  TF_SessionRun(session, nullptr, &feed, &input, 1, &fetch, &output, 1, nullptr, 0, nullptr, status);
  Check(status, "running the model");
  if (TF_TensorType(output) != TF_UINT8 || TF_NumDims(output) != 2 || TF_Dim(output, 0) != 1) {
    Fail("the output is not a uint8 [1, N] tensor");
  }
  std::ofstream out(argv[7], std::ios::binary);
  out.write(static_cast<const char*>(TF_TensorData(output)),
            static_cast<std::streamsize>(TF_TensorByteSize(output)));
  if (!out) Fail(std::string("cannot write ") + argv[7]);

  TF_DeleteTensor(input);
  TF_DeleteTensor(output);
  TF_CloseSession(session, status);
  TF_DeleteSession(session, status);
  TF_DeleteSessionOptions(options);
  TF_DeleteGraph(graph);
  TF_DeleteStatus(status);
  return 0;
}
