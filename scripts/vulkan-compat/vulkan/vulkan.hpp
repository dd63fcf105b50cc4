// Vulkan-Hpp as the system has it, plus VK_EXT_layer_settings where the headers predate it
// (Vulkan headers before 1.3.261, such as Debian 12's 1.3.239). ggml-vulkan names the
// extension's types unconditionally when it creates its instance; it enables the extension
// only when the validation layer offers it, so only the types are needed to compile.
// The portable build puts this folder first on the C++ include path (-isystem); every other
// declaration comes from the system's header through #include_next.
#pragma once
#include_next <vulkan/vulkan.hpp>

#ifndef VK_EXT_layer_settings
#define VK_EXT_layer_settings 1
#define VK_EXT_LAYER_SETTINGS_EXTENSION_NAME "VK_EXT_layer_settings"

namespace vk {
enum class LayerSettingTypeEXT : int32_t {
  eBool32 = 0,
  eInt32 = 1,
  eInt64 = 2,
  eUint32 = 3,
  eUint64 = 4,
  eFloat32 = 5,
  eFloat64 = 6,
  eString = 7,
};

struct LayerSettingEXT {
  const char *pLayerName;
  const char *pSettingName;
  LayerSettingTypeEXT type;
  uint32_t valueCount;
  const void *pValues;
};

// Same layout as VkLayerSettingsCreateInfoEXT (structure type 1000496000).
struct LayerSettingsCreateInfoEXT {
  StructureType sType = static_cast<StructureType>(1000496000);
  const void *pNext = nullptr;
  uint32_t settingCount = 0;
  const LayerSettingEXT *pSettings = nullptr;

  LayerSettingsCreateInfoEXT(const std::vector<LayerSettingEXT> &settings)
      : settingCount(static_cast<uint32_t>(settings.size())), pSettings(settings.data()) {}
};
}  // namespace vk
#endif
