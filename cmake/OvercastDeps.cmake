# Every dependency is a Debian package (scripts/setup.sh installs them); nothing is downloaded.
find_package(Threads REQUIRED)
find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)
find_package(OpenSSL REQUIRED)
find_package(zstd QUIET)
find_package(PkgConfig REQUIRED)
pkg_check_modules(LZ4 REQUIRED IMPORTED_TARGET liblz4)
pkg_check_modules(XXHASH REQUIRED IMPORTED_TARGET libxxhash)
pkg_check_modules(ZSTD REQUIRED IMPORTED_TARGET libzstd)
pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)
find_path(ASIO_INCLUDE_DIR asio.hpp REQUIRED)
find_path(CLI11_INCLUDE_DIR CLI/CLI.hpp REQUIRED)
find_path(NLOHMANN_JSON_INCLUDE_DIR nlohmann/json.hpp REQUIRED)

add_library(overcast_asio INTERFACE)
target_include_directories(overcast_asio SYSTEM INTERFACE ${ASIO_INCLUDE_DIR})
# asio decides between aligned_alloc/free and operator new/delete for its handler memory from
# whether libstdc++'s _GLIBCXX_HAVE_ALIGNED_ALLOC was defined before asio's config was read, so
# two translation units could disagree (memory from aligned_alloc freed with operator delete:
# AddressSanitizer's alloc-dealloc-mismatch in every PS client). Settled once for all of them.
target_compile_definitions(overcast_asio INTERFACE ASIO_STANDALONE ASIO_NO_DEPRECATED
                                                   ASIO_HAS_STD_ALIGNED_ALLOC=1)
target_link_libraries(overcast_asio INTERFACE Threads::Threads)

if(OVERCAST_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
