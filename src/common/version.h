// overcast's release version, from the project() line of the top CMakeLists.txt.
#pragma once

#include <string_view>

namespace overcast {

// "MAJOR.MINOR.PATCH", e.g. "0.1.0".
std::string_view Version();

}  // namespace overcast
